"""Hosted pages of each app: login, consent, sign-out (Jinja2, no JavaScript).

For pages of other flows: extend ``templates/base.html`` (blocks ``title`` and
``content``), answer with :func:`oneauth.web.render.render` (branding, CSRF
token, CSP and no-store headers) and :func:`oneauth.web.render.redirect` (302 or
303 only), and check posted forms with :func:`oneauth.web.csrf.check`.

A page that signs a user in another way (e.g. an emailed code) starts the
browser session with :func:`oneauth.web.browser_session.create` and
``replace_presented``, sets the cookie with ``set_cookie``, and, when the login
page sent the user with ``?flow=<sealed request>``, redirects (303) to
``{issuer}/oauth/authorize/continue?flow=<the same value>`` to finish the
authorization request.
"""
