"""Shipping a run: its model card (card.py) and the upload to the Hugging Face Hub (push.py)."""
