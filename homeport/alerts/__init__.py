"""Federation alerts: incidents found, kept, and told to administrators."""
