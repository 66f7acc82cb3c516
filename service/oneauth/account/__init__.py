"""The signed-in user's own account: sign-ins (sessions) and consents (issue 12).

The JSON API (``/v1/sessions``, ``/v1/consents``) and the hosted Security page
(``/account``) call the same functions here.
"""
