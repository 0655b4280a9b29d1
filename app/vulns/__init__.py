"""The vulnerability's life: states, embargo dates, reminders, patches, CVE ids."""
