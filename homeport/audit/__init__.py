"""The audit bot: an application service per homeserver that records chosen local rooms.

`registration` renders what Synapse loads; `records` turns events into rows
(pure); `store` keeps them append-only in Homeport's store; `app` receives
Synapse's transactions and acknowledges each only once it is committed;
`bot` is the process `up` supervises (`service`); `export` streams records out.
"""
