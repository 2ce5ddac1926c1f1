"""The ``command`` job kind: any program that writes checkpoints and can resume from one."""
