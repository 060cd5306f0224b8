"""ROS discovery settings: domain id, discovery range, static peers, the deprecated ROS_LOCALHOST_ONLY.

Sources: ROS 2 docs, Concepts/About-Domain-ID (0-101 safe on Linux, 232 the largest the RTPS port formula
allows) and Tutorials/Advanced/Improved-Dynamic-Discovery (Iron and later: ROS_AUTOMATIC_DISCOVERY_RANGE =
SUBNET | LOCALHOST | OFF | SYSTEM_DEFAULT, ROS_STATIC_PEERS; OFF discovers nothing, static peers included;
rmw_zenoh supports neither).
"""

from __future__ import annotations

from dla_perception.tools.doctor.dds import active_rmw
from dla_perception.tools.doctor.system import ERROR, INFO, OK, WARN, Finding, System

SAFE_DOMAIN_MAX, DOMAIN_MAX = 101, 232
RANGES = ("SUBNET", "LOCALHOST", "OFF", "SYSTEM_DEFAULT")
PRE_RANGE_DISTROS = ("foxy", "galactic", "humble")  # before Iron: ROS_LOCALHOST_ONLY is the only knob


def check_domain_id(system: System) -> list[Finding]:
    value = system.env.get("ROS_DOMAIN_ID", "").strip()
    if not value:
        text = "ROS_DOMAIN_ID unset: domain 0, the one every ROS 2 system on the network uses by default"
        return [Finding("ros_domain", INFO, text, "export ROS_DOMAIN_ID=<0-101, one per robot>")]
    details = {"ROS_DOMAIN_ID": value}
    if not value.isdigit():
        return [Finding("ros_domain", ERROR, f"ROS_DOMAIN_ID={value!r} is not a number: rcl refuses to start "
                        "nodes", "export ROS_DOMAIN_ID=<0-101>", details)]
    domain = int(value)
    if domain > DOMAIN_MAX:
        text = f"ROS_DOMAIN_ID={domain} is above {DOMAIN_MAX}: its DDS ports do not exist, nodes cannot talk"
        return [Finding("ros_domain", ERROR, text, "export ROS_DOMAIN_ID=<0-101>", details)]
    if domain > SAFE_DOMAIN_MAX:
        text = (f"ROS_DOMAIN_ID={domain}: its ports may collide with Linux's ephemeral ports "
                f"(0-{SAFE_DOMAIN_MAX} are safe)")
        return [Finding("ros_domain", WARN, text, "export ROS_DOMAIN_ID=<0-101>", details)]
    return [Finding("ros_domain", OK, f"ROS_DOMAIN_ID={domain}", details=details)]


def check_discovery(system: System) -> list[Finding]:
    env = system.env
    distro = env.get("ROS_DISTRO", "").strip().lower()
    has_range = distro not in PRE_RANGE_DISTROS  # unknown distro: assume Jazzy-era rcl
    discovery_range = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip()
    peers = [peer.strip() for peer in env.get("ROS_STATIC_PEERS", "").split(";") if peer.strip()]
    localhost_only = env.get("ROS_LOCALHOST_ONLY", "").strip()
    details = {"ROS_DISTRO": distro or None, "ROS_AUTOMATIC_DISCOVERY_RANGE": discovery_range or None,
               "ROS_STATIC_PEERS": peers, "ROS_LOCALHOST_ONLY": localhost_only or None}
    findings = []
    if active_rmw(system) == "rmw_zenoh_cpp" and (discovery_range or peers):
        findings.append(Finding("discovery", WARN, "rmw_zenoh ignores ROS_AUTOMATIC_DISCOVERY_RANGE and "
                                "ROS_STATIC_PEERS: discovery goes through the Zenoh router's configuration",
                                "configure ZENOH_ROUTER_CONFIG_URI / ZENOH_SESSION_CONFIG_URI", details))
    if localhost_only:
        if not has_range:
            level, text = INFO, f"ROS_LOCALHOST_ONLY={localhost_only} ({distro}'s localhost switch)"
            fix = ""
        else:
            level = WARN
            text = (f"ROS_LOCALHOST_ONLY={localhost_only} is deprecated since Iron"
                    + (" and overrides ROS_AUTOMATIC_DISCOVERY_RANGE" if localhost_only == "1" else ""))
            fix = "unset ROS_LOCALHOST_ONLY; export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST"
        findings.append(Finding("discovery", level, text, fix, details))
    if not has_range:
        if discovery_range or peers:
            text = f"ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_STATIC_PEERS are ignored on {distro} (new in Iron)"
            fix = "use ROS_LOCALHOST_ONLY=1, or a DDS profile with initial peers"
            findings.append(Finding("discovery", WARN, text, fix, details))
        text = f"{distro}: default multicast discovery"
        return findings or [Finding("discovery", OK, text, details=details)]
    upper = discovery_range.upper()
    if localhost_only == "1":
        upper = "LOCALHOST"  # rcl honours the deprecated switch over the range
    if discovery_range and upper not in RANGES:
        text = f"ROS_AUTOMATIC_DISCOVERY_RANGE={discovery_range!r} is not one of {', '.join(RANGES)}"
        findings.append(Finding("discovery", WARN, text, "export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST",
                                details))
    elif upper == "OFF":
        text = ("ROS_AUTOMATIC_DISCOVERY_RANGE=OFF: nodes discover no other node, not even on this machine "
                "or among the static peers")
        findings.append(Finding("discovery", ERROR, text, "export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST",
                                details))
    else:
        scope = {"LOCALHOST": "this machine only", "SYSTEM_DEFAULT": "the middleware's own settings"}.get(
            upper, "every host on the subnet (multicast)")
        text = f"discovery range {upper or 'SUBNET (default)'}: {scope}"
        if peers:
            text += f", plus static peers {', '.join(peers)}"
        findings.append(Finding("discovery", INFO, text, details=details))
    if env.get("ROS_DISCOVERY_SERVER", "").strip():
        text = f"Fast DDS discovery server {env['ROS_DISCOVERY_SERVER']}: nodes see only what it relays"
        findings.append(Finding("discovery", INFO, text, details=details))
    return findings
