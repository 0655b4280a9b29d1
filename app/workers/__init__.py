"""Jobs, the reconciler, queues, the supervisor, start-up and health."""
