"""scaleplane's deploy driver: the offline plan, the Automation API commands, blue/green."""
