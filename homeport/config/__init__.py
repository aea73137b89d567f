"""The deployment model: what `homeport.yaml` may say, and loading it with precise errors."""

from homeport.config.loader import load_deployment
from homeport.config.model import Deployment, Homeserver

__all__ = ["Deployment", "Homeserver", "load_deployment"]
