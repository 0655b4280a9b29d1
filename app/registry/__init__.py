"""Product makers: vetting, renewal, subscriptions, pre-disclosure alerts."""
