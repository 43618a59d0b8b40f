"""Local development stack: emulators, resource creation, load generator, the one-command stack."""
