"""The deployment model: what `homeport.yaml` may say, and loading it with precise errors.

Import what you need from its modules (`homeport.config.deployment`,
`homeport.config.loader`, ...): nothing is imported here, so that code which
needs one section's model (the Homeport module inside Synapse reads the
directory's settings) does not load the whole file's model and YAML parser.
"""
