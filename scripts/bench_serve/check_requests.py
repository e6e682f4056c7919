"""A few sample requests against a /similar-products server: each should answer 200 with
a JSON list of n {name, price, image, product_id}. Problems are printed as warnings.

usage: check_requests.py LABEL BASE_URL REQUESTS_FILE
"""
import json, sys, urllib.error, urllib.request
label, base, path = sys.argv[1:4]
lines = [l.strip() for l in open(path) if l.strip()]
def args(q):
    return dict(kv.split("=", 1) for kv in q.split("&"))
picks = (lines[:4] + [l for l in lines if "userId" not in args(l)][:1]
         + [l for l in lines if len(args(l).get("userId", "")) >= 8][:1] + ["n=5", "productId=999999999&n=3"])
problems = []
for q in picks:
    want = int(args(q).get("n", 10))
    try:
        with urllib.request.urlopen(f"{base}/similar-products?{q}", timeout=60) as r:
            body = json.loads(r.read())
    except (urllib.error.URLError, ValueError) as e:
        problems.append(f"{q}: {e}")
        continue
    if not isinstance(body, list) or len(body) != want:
        problems.append(f"{q}: want a list of {want}, got {str(body)[:200]}")
        continue
    for d in body:
        if not isinstance(d, dict) or set(d) != {"name", "price", "image", "product_id"} or not (
                d["image"] is None or str(d["image"]).startswith("/image/")):
            problems.append(f"{q}: bad item {str(d)[:200]}")
            break
for p in problems:
    print(f"   WARNING {label}: {p}")
print(f"   {label}: {len(picks) - len(problems)}/{len(picks)} sample requests answered as expected")
