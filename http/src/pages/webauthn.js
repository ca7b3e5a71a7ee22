// Passkeys and security keys on Tessera's pages. Served by this server at
// /assets/webauthn.js (the pages' policy allows scripts from this origin only, never inline).
//
// A form marked data-webauthn ("create" or "get") is shown only when the browser has
// WebAuthn. On submit, it takes its options (embedded in data-options, or fetched by POST from
// data-start), asks the browser for a credential, writes the ceremony id and the answer
// (binary fields in base64url, as the server reads them) into its hidden fields, and posts
// the form. Without this script the forms stay hidden and the password and code forms work
// as before.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function bytes(text) {
    var s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    return Uint8Array.from(atob(s), function (c) { return c.charCodeAt(0); }).buffer;
  }

  function text(buffer) {
    var s = "";
    new Uint8Array(buffer).forEach(function (b) { s += String.fromCharCode(b); });
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function ids(list) {
    (list || []).forEach(function (c) { c.id = bytes(c.id); });
  }

  function answer(credential) {
    var r = credential.response;
    var out = {
      id: credential.id,
      rawId: text(credential.rawId),
      type: credential.type,
      extensions: {},
      response: { clientDataJSON: text(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = text(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = text(r.authenticatorData);
      out.response.signature = text(r.signature);
      if (r.userHandle) out.response.userHandle = text(r.userHandle);
    }
    return out;
  }

  function options(form) {
    if (form.dataset.options) return Promise.resolve(JSON.parse(form.dataset.options));
    var kind = form.elements.kind ? { kind: form.elements.kind.value } : {};
    return fetch(form.dataset.start, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(kind)
    }).then(function (resp) {
      if (!resp.ok) throw new Error("the server did not start the ceremony");
      return resp.json();
    });
  }

  function ceremony(form, started) {
    var pk = started.publicKey;
    pk.challenge = bytes(pk.challenge);
    if (form.dataset.webauthn === "create") {
      pk.user.id = bytes(pk.user.id);
      ids(pk.excludeCredentials);
      return navigator.credentials.create({ publicKey: pk });
    }
    ids(pk.allowCredentials);
    return navigator.credentials.get({ publicKey: pk });
  }

  document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var status = form.querySelector(".webauthn-status");
      if (status) status.textContent = "";
      options(form).then(function (started) {
        return ceremony(form, started).then(function (credential) {
          form.elements.ceremony.value = started.ceremony;
          form.elements.credential.value = JSON.stringify(answer(credential));
          form.submit();
        });
      }).catch(function () {
        if (status) status.textContent = "No passkey was used. Try again, or use another way.";
      });
    });
  });
})();
