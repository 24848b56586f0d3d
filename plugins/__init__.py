"""kray.plugins: task and trigger types. ``core`` ships with kray; others come through the
``kray.plugins`` entry-point group."""
