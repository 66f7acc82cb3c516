// Passkeys on the hosted pages (issue 12). Served from the app's own origin
// (CSP script-src 'self'; no inline script). Uses the browser's JSON forms of
// WebAuthn (PublicKeyCredential.parseRequestOptionsFromJSON / toJSON), so no
// base64 glue: the server's options go in as they came, the credential goes
// back as toJSON() gives it.
//
// Sign-in: an element [data-passkey-signin] (templates/_passkey_signin.html)
// with data-options-url, data-action, data-csrf-field, data-csrf, data-flow,
// data-flow-token and data-factors, and a button. On click: POST the CSRF token (and the flow
// token, if the page has one) to the options URL, ask the authenticator, then
// POST csrf, flow, flow_token and the JSON credential ("assertion") to
// data-action as an ordinary form, so the server answers with its redirect.
// The element is hidden until this script finds WebAuthn's JSON methods, so
// without JavaScript (or on an old browser) the page is what it always was.
//
// Registration: window.oneauthPasskeys.register(optionsUrl, registerUrl, init)
// for the account page (or any first-party page): init is the fetch options
// (headers such as Authorization, or a body with the CSRF field).
(() => {
  "use strict";

  const supported =
    typeof window.PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function";

  async function postJson(url, init) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      ...init,
      headers: { accept: "application/json", ...(init.headers || {}) },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || `HTTP ${response.status}`);
      error.problem = body;
      throw error;
    }
    return body;
  }

  function say(box, message) {
    const line = box.querySelector("[data-passkey-message]");
    if (!line) return;
    line.textContent = message;
    line.hidden = !message;
  }

  function field(form, name, value) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.append(input);
  }

  async function signIn(box) {
    const data = box.dataset;
    const body = new URLSearchParams({
      [data.csrfField]: data.csrf,
      flow: data.flow,
      flow_token: data.flowToken,
    });
    const options = await postJson(data.optionsUrl, { body });
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey),
    });
    const form = document.createElement("form");
    form.method = "post";
    form.action = data.action;
    form.hidden = true;
    field(form, data.csrfField, data.csrf);
    field(form, "flow", data.flow);
    field(form, "flow_token", options.flow_token || data.flowToken);
    field(form, "factors", data.factors || "");
    field(form, "assertion", JSON.stringify(credential.toJSON()));
    document.body.append(form);
    form.submit();
  }

  async function enrol(box) {
    const data = box.dataset;
    const body = new URLSearchParams({ [data.csrfField]: data.csrf, flow_token: data.flowToken });
    const options = await postJson(data.optionsUrl, { body });
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
    });
    const form = document.createElement("form");
    form.method = "post";
    form.action = data.action;
    form.hidden = true;
    field(form, data.csrfField, data.csrf);
    field(form, "flow_token", data.flowToken);
    field(form, "credential", JSON.stringify(credential.toJSON()));
    document.body.append(form);
    form.submit();
  }

  async function register(optionsUrl, registerUrl, init = {}, name = null) {
    const options = await postJson(optionsUrl, {
      ...init,
      headers: { "content-type": "application/json", ...(init.headers || {}) },
      body: init.body || "{}",
    });
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
    });
    const payload = { credential: credential.toJSON() };
    if (name) payload.name = name;
    return postJson(registerUrl, {
      ...init,
      headers: { "content-type": "application/json", ...(init.headers || {}) },
      body: JSON.stringify(payload),
    });
  }

  // The account page (templates/account_passkey.html): register with the CSRF
  // token in x-csrf-token; when the sign-in is too old for the change, post
  // data-reauth-action (a fresh sign-in that comes back to the page).
  async function registerHere(box) {
    const data = box.dataset;
    const nameInput = box.querySelector("[data-passkey-name]");
    const name = nameInput && nameInput.value.trim();
    try {
      await register(data.optionsUrl, data.action, { headers: { "x-csrf-token": data.csrf } }, name || null);
    } catch (error) {
      if (error.problem && error.problem.code === "insufficient_user_authentication") {
        const form = document.createElement("form");
        form.method = "post";
        form.action = data.reauthAction;
        form.hidden = true;
        field(form, data.csrfField, data.csrf);
        document.body.append(form);
        form.submit();
        return;
      }
      throw error;
    }
    window.location.assign(data.doneUrl);
  }

  window.oneauthPasskeys = { supported, register, signIn };

  if (!supported) return;
  const actions = [
    ["[data-passkey-signin]", signIn],
    ["[data-passkey-enrol]", enrol],
    ["[data-passkey-register]", registerHere],
  ];
  for (const [selector, action] of actions) {
    for (const box of document.querySelectorAll(selector)) wire(box, action);
  }

  function wire(box, action) {
    box.hidden = false;
    const button = box.querySelector("button");
    button.addEventListener("click", () => {
      say(box, "");
      button.disabled = true;
      action(box).catch((error) => {
        button.disabled = false;
        // NotAllowedError: the user closed the dialog, or no passkey fits.
        say(
          box,
          error.name === "NotAllowedError"
            ? "No passkey was used. Try again, or sign in another way."
            : error.message || "The passkey could not be used.",
        );
      });
    });
  }
})();
