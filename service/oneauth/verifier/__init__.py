"""Re-export of :mod:`oneauth_verifier`, the ``oneauth-verifier`` distribution
(packages/verifier). The verifier lives there so resource servers can install it without the
server's dependencies; ``oneauth.verifier`` stays so the server and existing imports keep working.
Submodules re-exported the same way: ``errors``, ``starlette``, ``testing``. New code (and
anything outside this repository) imports ``oneauth_verifier``.
"""

from oneauth_verifier import *  # noqa: F403
from oneauth_verifier import __all__ as __all__
