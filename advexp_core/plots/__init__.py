"""Figures of result records, never imported by what they draw."""
