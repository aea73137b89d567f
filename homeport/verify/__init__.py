"""`homeport verify`: probes through the client API, compared with what the policy says."""
