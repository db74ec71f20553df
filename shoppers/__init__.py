"""Shoppers: enrollment and cards. The door is `shoppers.service`."""
