"""The staff console under /staff: parse, call app/staff's and payouts/' domain functions, render (no SQL here).

One module per area of the console; `common.py` holds what every page shares (`page()`, the session and
CSRF check, the status labels); `routes.py` lists the URLs.
"""
