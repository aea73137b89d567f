"""The ground floor of running things: a `Service`, child processes that never outlive
`up`, loopback and HTTPS children, the supervisor and its run state files.

Every capability's service is built from these; nothing here knows a capability.
"""
