#!/usr/bin/env python3
"""For benches/cloud.sh: creates an Azure Blob container with the account key (Shared Key,
path-style URLs as Azurite serves them) and prints a container SAS URL that rclone can use
(read, add, create, write, delete, list). Usage: azure-container.py ACCOUNT KEY HOST CONTAINER"""
import base64, hmac, hashlib, sys, urllib.request, urllib.parse, email.utils

account, key, host, container = sys.argv[1:5]
k = base64.b64decode(key)
date = email.utils.formatdate(usegmt=True)
ver = "2021-08-06"
sts = "\n".join(["PUT", "", "", "", "", "", "", "", "", "", "", "",
                 f"x-ms-date:{date}\nx-ms-version:{ver}",
                 f"/{account}/{account}/{container}\nrestype:container"])
sig = base64.b64encode(hmac.new(k, sts.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"http://{host}/{account}/{container}?restype=container", method="PUT",
    headers={"x-ms-date": date, "x-ms-version": ver, "Authorization": f"SharedKey {account}:{sig}", "Content-Length": "0"})
try:
    print(urllib.request.urlopen(req).status, file=sys.stderr)
except urllib.error.HTTPError as e:
    if e.code != 409: raise
# container SAS racwdl, one day
st, se = "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z"
sv = "2021-08-06"
fields = ["racwdl", st, se, f"/blob/{account}/{container}", "", "", "", sv, "c", "", "", "", "", "", "", ""]
s = base64.b64encode(hmac.new(k, "\n".join(fields).encode(), hashlib.sha256).digest()).decode()
q = urllib.parse.urlencode({"sv": sv, "sr": "c", "sp": "racwdl", "st": st, "se": se, "sig": s})
print(f"http://{host}/{account}/{container}?{q}")
