"""Billing's notices: the notification events billing's changes produce (an invoice finalized or paid, a payment
failed, a subscription changed or canceled, a statement ready) and the scans that find what is about to happen
(a trial ending, a card expiring). Each is queued with `tenants.notifications.notify` inside the transaction of
the change it tells about, with the data contract of the event catalogue."""
