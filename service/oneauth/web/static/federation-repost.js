// Federation's form_post re-post page (issue 14, F9). Served from the app's own
// origin (CSP script-src 'self'; no inline script). The upstream's answer came as a
// cross-site POST without this site's SameSite=Lax cookies; this posts the same
// fields back to the callback from this page (same-site, cookies included), once.
// Without JavaScript the page shows its "Continue" button instead.
(() => {
  "use strict";
  const form = document.querySelector("form[data-federation-repost]");
  if (form && !form.dataset.sent) {
    form.dataset.sent = "1";
    form.submit();
  }
})();
