"""Code that runs inside Synapse: the Homeport module, the audit bot's rules, directory
login, the module's reads of Synapse's tables.

Synapse imports it, so it imports only the standard library, Synapse, pydantic and
Homeport's lowest floors (identities, the config models, the directory reader). What
the rest of Homeport may know of it is `contract` (paths and words) and `config` (the
typed configuration the render writes and the module parses).
"""
