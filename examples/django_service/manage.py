#!/usr/bin/env python
"""Django's command-line utility, with telemetry set up before Django loads its settings."""

import os
import sys

import platform_obs


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory.settings")
    platform_obs.init(service_name="inventory")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
