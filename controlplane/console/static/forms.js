// The console's only script, and an optional one: a form that changes something is sent once. Its buttons are
// disabled as it goes, so a double click sends one request (the server answers a repeat harmlessly anyway).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") {
    return;
  }
  if (form.dataset.sent === "yes") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "yes";
  // After this event: disabling the pressed button now would leave its name and value out of the form.
  setTimeout(() => form.querySelectorAll("button").forEach((button) => { button.disabled = true; }), 0);
});
