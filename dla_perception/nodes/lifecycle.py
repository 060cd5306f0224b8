"""Managed (lifecycle) nodes, the ROS 2 way: rclpy's LifecycleNode with the transitions a Nav2 stack drives.

Every dla_perception node is a LifecycleNode. With its `lifecycle` parameter false (the default) it walks
itself to *active* at the end of its constructor, as a plain node would start, and a configure problem
(engines file missing, a model that will not build) only shows in diagnostics while the node keeps running
and retrying — today's behaviour. With `lifecycle: true` it waits *unconfigured* for a lifecycle manager
(Nav2's lifecycle_manager, `ros2 lifecycle set`):

- configure: load or build the engines (the long part: TensorRT plans on a Jetson) and the pipeline, create
  the output publishers (lifecycle publishers: silent until active). A failure says why (log and the node's
  status) and the node stays unconfigured.
- activate: create the input subscriptions; outputs publish.
- deactivate: destroy the input subscriptions and let the frame in flight finish; engines stay loaded, so a
  later activate is instant.
- cleanup / shutdown: release the pipeline, the publishers and (where the node owns them) the engines.

Subclasses fill the hooks `_configure(strict)`, `_activate()`, `_deactivate()`, `_cleanup()`; the
diagnostics publisher is outside the state machine, so an unconfigured node still says what it is waiting
for.
"""

from __future__ import annotations

from typing import Any

from lifecycle_msgs.msg import State
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from dla_perception.nodes.diagnostics import ERROR

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class ManagedNode(LifecycleNode):
    """The transition plumbing; `health` (a Health) and `param()` come from the subclass."""

    health: Any

    # -- hooks --------------------------------------------------------------------------------------------
    def _configure(self, strict: bool) -> str | None:
        """Build what the node needs; the reason it cannot (strict: the transition fails), or None."""
        return None

    def _activate(self) -> None:
        """Create the input subscriptions."""

    def _deactivate(self) -> None:
        """Destroy the input subscriptions; nothing is processed after this returns."""

    def _cleanup(self) -> None:
        """Release what _configure built (publishers, pipeline, owned engines)."""

    # -- the state machine ----------------------------------------------------------------------------------
    @property
    def managed(self) -> bool:
        """Whether a lifecycle manager drives this node (the `lifecycle` parameter)."""
        return bool(self.param("lifecycle"))

    def lifecycle_state(self) -> str:
        """unconfigured, inactive, active or finalized (or a transition's name while one runs)."""
        return str(self._state_machine.current_state[1])

    def _in_state(self, state_id: int) -> bool:
        return self._state_machine.current_state[0] == state_id

    def _start(self) -> None:
        """End of the most derived constructor: go to active by ourselves unless a manager drives us."""
        if self.managed:
            self.get_logger().info("lifecycle: unconfigured, waiting for configure (lifecycle manager)")
            return
        self.trigger_configure()
        if self._in_state(State.PRIMARY_STATE_INACTIVE):  # a failure is in diagnostics: nothing to activate
            self.trigger_activate()

    def on_configure(self, state: Any) -> TransitionCallbackReturn:
        try:
            reason = self._configure(strict=self.managed)
        except Exception as exc:  # a transition callback that raises puts the node in error processing
            reason = f"unexpected error: {exc!r}"
        if reason:
            self.health.set_condition("lifecycle", ERROR, f"configure failed, still unconfigured: {reason}")
            self._cleanup()
            return FAILURE
        self.health.clear_condition("lifecycle")
        return super().on_configure(state)

    def on_activate(self, state: Any) -> TransitionCallbackReturn:
        self._activate()
        return super().on_activate(state)  # enables the lifecycle publishers

    def on_deactivate(self, state: Any) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: Any) -> TransitionCallbackReturn:
        self._cleanup()
        return super().on_cleanup(state)

    def on_shutdown(self, state: Any) -> TransitionCallbackReturn:
        if state.state_id == State.PRIMARY_STATE_ACTIVE:
            self._deactivate()
        self._cleanup()
        return SUCCESS

    def on_error(self, state: Any) -> TransitionCallbackReturn:
        self.health.set_condition("lifecycle", ERROR, f"error while {state.label}: released, unconfigured")
        self._deactivate()
        self._cleanup()
        return SUCCESS
