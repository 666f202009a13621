"""Appraisal: the owner's reports (daily roll-ups, JSON/CSV/XLSX, dashboard) and field KPIs."""
