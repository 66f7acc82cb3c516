"""Federation: sign-in through an app's upstream identity providers (issue 14).

Modules (one idea each):

* :mod:`.providers`  the app's provider records, presets, sealed client secrets,
  CLI-facing create/list/show/update/delete (audited), ``callback_url``.
* :mod:`.upstream`   the protocol, no database: discovery + JWKS (cached), the
  authorization URL (state, nonce, PKCE S256), the callback checks (RFC 9207
  ``iss``), code exchange on authlib's async httpx client, ID token validation,
  userinfo; GitHub-style OAuth 2.0 with ``/user`` + ``/user/emails``. Every
  call has bounded timeouts and runs with NO database connection held.
* :mod:`.identities` ``user_identities``: keyed by (provider, upstream issuer,
  upstream subject); Microsoft: ``<tid>:<oid>`` (F1, B5).
* :mod:`.requests`   ``federation_requests`` (state, nonce, sealed PKCE verifier,
  single use), ``federation_pending_links``, ``federation_codes``.
* :mod:`.linking`    the rules: who an upstream identity signs in as (F1, P7).

The entry points the surfaces call live in :mod:`oneauth.strategies.upstream`
(the "upstream" strategy of the flow engine)::

    from oneauth.strategies import upstream

    # Hosted start page / idp_hint / first-party start: a flow (transient or
    # stored; kind "login") bound to the browser, then redirect to the URL.
    started = await upstream.begin(services, app, flow, provider_id, meta=meta)
    started.authorize_url   # 303 there
    started.flow_token      # the flow's token (stored now); usually not needed

    # Hosted callback page: every query parameter as received, the browser's
    # binding (engine.browser_binding(nonce cookie)). ``finish`` runs in the
    # transaction that records the sign-in, after engine.satisfy:
    #     finish(conn, flow, user, flow_token) -> T  (typically engine.complete(...,
    #     flow_token=flow_token, browser=request))
    outcome = await upstream.callback(
        services, app, provider_id, dict(request.query_params), binding=binding,
        meta=meta, finish=finish)
    # outcome is one of:
    #   upstream.SignedIn(user, amr, flow, result=<what finish returned>)
    #   upstream.LinkRequired(pending_id, flow, flow_token, email_masked,
    #                         provider_name)  -> show "prove your account" page
    #   upstream.Linked(user, identity_id)    -> a purpose="link" begin ended
    #   upstream.Refused(reason, message)     -> clear error page; nothing created

    # Link confirmation page: the user proves the local account with one of its
    # factors (any strategy name + its payload, e.g. "password" {email,
    # password}), and confirms. Then the identity is linked, audited, mailed,
    # and ``finish`` runs as above (engine.complete may still ask for MFA).
    outcome = await upstream.confirm_link(
        services, app, flow_token=..., binding=..., factor="password",
        payload={...}, confirm=True, meta=meta, finish=finish)
    # -> SignedIn | Refused

    # Self-service "link another provider" (the caller checks the recent sign-in):
    started = await upstream.begin(services, app, flow, provider_id, meta=meta,
                                   purpose="link", user_id=user.id)

    # First-party start/complete codes (POST /v1/federation/complete):
    code = await upstream.issue_code(conn, user_id, provider_id, amr)   # in finish
    user_id, amr = await upstream.redeem_code(conn, code)  # raises InvalidLinkOrCode

Refusal reasons (``Refused.reason``, stable snake_case, audited as
``federation.callback`` denied): ``unknown_provider``, ``invalid_state``,
``upstream_error``, ``issuer_mismatch``, ``upstream_unavailable``,
``token_exchange_failed``, ``invalid_id_token``, ``nonce_mismatch``,
``userinfo_mismatch``, ``email_missing``, ``email_unverified``, ``signup_closed``,
``linking_disabled``, ``account_disabled``, ``identity_in_use``,
``link_not_confirmed``, ``wrong_account``.
"""
