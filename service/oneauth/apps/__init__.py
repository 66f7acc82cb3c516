"""The app registry: provisioning, lookup, suspension and deletion of apps."""
