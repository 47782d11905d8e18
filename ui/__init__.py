"""The web app's pages. Streamlit lives here and in app.py only; everything else is library."""
