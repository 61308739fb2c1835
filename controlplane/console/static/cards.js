// The card form (templates/cards.html): Stripe.js collects the card and confirms the page's SetupIntent with
// Stripe; the form then sends our server only the SetupIntent's id.
(() => {
  const form = document.getElementById("card-form");
  if (!form || typeof Stripe === "undefined") {
    return;
  }
  const stripe = Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  const error = document.getElementById("card-error");
  let confirmed = false;
  form.addEventListener("submit", async (event) => {
    if (confirmed) {
      return; // the second time round: the SetupIntent is confirmed, the form goes to our server
    }
    event.preventDefault();
    event.stopImmediatePropagation(); // not "sent" yet for forms.js: Stripe answers first
    error.hidden = true;
    const result = await stripe.confirmCardSetup(form.dataset.clientSecret, { payment_method: { card } });
    if (result.error) {
      error.textContent = result.error.message || "The card was refused.";
      error.hidden = false;
      return;
    }
    form.elements.setup_intent.value = result.setupIntent.id;
    confirmed = true;
    form.requestSubmit();
  });
})();
