"""The assembly of a deployment: which capabilities run (`capabilities`), the services
they contribute, preparing the machine, `up`, status, what each homeserver runs with,
and the commands that steer a running `up`.

The floor above the capabilities: it iterates over them and names none.
"""
