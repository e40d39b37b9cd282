"""Alarm model: severities, the catalog (alarm inventory) and the alarm manager."""
