"""How each page shows its result (Streamlit calls only; the numbers come ready from the jobs)."""
