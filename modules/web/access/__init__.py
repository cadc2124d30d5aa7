"""Access control: who may use Sillon (gate.py: the login page, CSRF, one gate every request passes),
the API token scripts send (api_token.py) and the limit on wrong passwords (login_limit.py)."""
from . import api_token, login_limit
from .gate import Access, access, bp, client_address, csrf, gate, init_app, safe_next

__all__ = ["Access", "access", "api_token", "bp", "client_address", "csrf", "gate", "init_app", "login_limit",
           "safe_next"]
