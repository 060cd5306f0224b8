"""The `dla-perception` command line."""
