"""Ray Serve: Motion2Language and Language2Motion deployments behind one versioned HTTP API."""
