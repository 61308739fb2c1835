"""The beat schedule, in one place. Run exactly one beat process."""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "billing-cycle": {
        "task": "controlplane.billing.run_cycle",
        "schedule": crontab(minute="5"),
    },
    "record-addon-changes": {
        "task": "controlplane.billing.record_addon_changes",
        "schedule": crontab(minute="*/10"),
    },
    "accept-overdue-milestones": {
        "task": "controlplane.billing.accept_overdue_milestones",
        "schedule": crontab(minute="45"),
    },
    "collect-payments": {
        "task": "controlplane.billing.collect_payments",
        "schedule": crontab(minute="35"),
    },
    "expire-credits": {
        "task": "controlplane.billing.expire_credits",
        "schedule": crontab(minute="25"),
    },
    "expire-licenses": {
        "task": "controlplane.plugins.expire_licenses",
        "schedule": crontab(minute="*/10"),
    },
    "release-stale-activations": {
        "task": "controlplane.plugins.release_stale_activations",
        "schedule": crontab(minute="*/5"),
    },
    "expire-partner-checkpoints": {
        "task": "controlplane.partners.expire_checkpoints",
        "schedule": crontab(minute="23", hour="2"),
    },
    # On the 1st; the 2nd and 3rd retry resellers whose close failed (closing twice changes nothing); a month
    # still failing after the 3rd is closed first by the next month's run, which closes months in order.
    "close-commission-month": {
        "task": "controlplane.partners.close_month",
        "schedule": crontab(minute="40", hour="3", day_of_month="1-3"),
    },
    "send-payouts": {
        "task": "controlplane.partners.send_payouts",
        "schedule": crontab(minute="50"),
    },
    # Every minute; a run still waiting when the next is due is dropped rather than queued behind it.
    "deliver-webhooks": {
        "task": "controlplane.webhooks.deliver",
        "schedule": crontab(),
        "options": {"expires": 55},
    },
    "purge-expired-idempotency-keys": {
        "task": "controlplane.purge_expired_idempotency_keys",
        "schedule": crontab(minute="17"),
    },
    # Daily, rotating only what is due (JWT keys weekly, the license key quarterly): a missed day catches up.
    "rotate-secrets": {
        "task": "controlplane.secrets.rotate",
        "schedule": crontab(minute="11", hour="4"),
    },
    # Hourly: trials ending within 3 days are told once per trial end (a rerun queues nothing more).
    "notify-trials-ending": {
        "task": "controlplane.billing.notify_trials_ending",
        "schedule": crontab(minute="15"),
    },
    # Daily: default cards expiring at the end of next month are told once per card and expiry month.
    "notify-expiring-cards": {
        "task": "controlplane.billing.notify_expiring_cards",
        "schedule": crontab(minute="27", hour="9"),
    },
}

# Every minute, like webhook delivery: a run still waiting when the next is due is dropped, not queued.
BEAT_SCHEDULE["send-notifications"] = {
    "task": "controlplane.notifications.send",
    "schedule": crontab(),
    "options": {"expires": 55},
}

# Daily: what both outboxes are done with goes after its retention (tenants/notifications/retention.py).
BEAT_SCHEDULE["purge-notifications"] = {
    "task": "controlplane.notifications.purge",
    "schedule": crontab(minute="37", hour="3"),
}
