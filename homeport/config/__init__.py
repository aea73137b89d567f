"""The deployment model: what `homeport.yaml` may say, and loading it with precise errors."""

from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.loader import load_deployment

__all__ = ["Deployment", "Homeserver", "load_deployment"]
