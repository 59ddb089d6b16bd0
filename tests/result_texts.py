"""Realistic device-check result texts, as resellers' services write them (iPhone and Android, completed and
rejected; `<br>`, newlines, ` - `, ` | `, HTML tables and escaped tags), with the columns they must give.
Shared by the parsing tests of both providers' sync paths (tests/imei/test_results.py, tests/imei/test_dhru.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any

# (final status, result text, expected columns, expected extra labels) — as resellers' services write them.
TEXTS: list[tuple[str, str, dict[str, Any], set[str]]] = [
    ("Completed",  # iPhone full check, <br> and font/span tags, an entity
     "Model: iPhone 13 Pro 128GB Graphite<br>IMEI: 353321000000016<br>IMEI2: 353321000000024<br>"
     "Serial Number: F2LXK0ABCD12<br>MEID: 35332100000001<br>Find My iPhone: <font color='red'>ON</font><br>"
     "iCloud Status: Clean<br>Blacklist Status: <span style='color:green'>CLEAN</span><br>Carrier: AT&amp;T USA<br>"
     "SimLock: Locked<br>Warranty Status: Out Of Warranty<br>Estimated Purchase Date: 2021-10-02<br>"
     "Activation Status: Activated<br>Purchase Country: United States",
     {"model": "iPhone 13 Pro 128GB Graphite", "brand": "Apple", "imei2": "353321000000024", "serial": "F2LXK0ABCD12",
      "meid": "35332100000001", "fmi": "ON", "icloud": "Clean", "blacklist": "CLEAN", "carrier": "AT&T USA",
      "simlock": "Locked", "warranty": "Out Of Warranty", "purchase_date": "2021-10-02", "activation": "Activated",
      "country": "United States", "fmi_on": True, "blacklisted": False, "sim_locked": True,
      "purchased_on": date(2021, 10, 2)},
     {"IMEI"}),
    ("Completed",  # the provider export's one-line form with ` - `
     "Model: iPhone 12 - IMEI: 353321000000032 - Carrier: T-Mobile USA - SIM Lock: Unlocked - FMI: OFF - "
     "Blacklist: Clean",
     {"model": "iPhone 12", "carrier": "T-Mobile USA", "simlock": "Unlocked", "fmi": "OFF", "blacklist": "Clean",
      "fmi_on": False, "blacklisted": False, "sim_locked": False, "brand": "Apple"},
     {"IMEI"}),
    ("Completed",  # Samsung, plain newlines; a second model label goes to extra
     "Model: SM-G991U\nModel Name: Galaxy S21 5G\nBrand: SAMSUNG\nSerial Number: R5CR1234ABC\n"
     "Carrier: Verizon Wireless\nSIM Lock Status: Locked\nBlacklist Status: BLACKLISTED\nWarranty: Expired\n"
     "Country: USA\nManufacture Date: 2021-01-15",
     {"model": "SM-G991U", "brand": "SAMSUNG", "serial": "R5CR1234ABC", "carrier": "Verizon Wireless",
      "simlock": "Locked", "blacklist": "BLACKLISTED", "warranty": "Expired", "country": "USA",
      "blacklisted": True, "sim_locked": True, "fmi_on": None},
     {"Model Name", "Manufacture Date"}),
    ("Completed",  # an HTML table, label cell | value cell
     "<table><tr><td>Model</td><td>iPhone XR</td></tr><tr><td>Find My iPhone</td><td>OFF</td></tr>"
     "<tr><td>GSMA Blacklist</td><td>Not Blacklisted</td></tr><tr><td>Sold By</td><td>Apple Store</td></tr></table>",
     {"model": "iPhone XR", "fmi": "OFF", "blacklist": "Not Blacklisted", "fmi_on": False, "blacklisted": False},
     {"Sold By"}),
    ("Completed",  # paragraphs with bold labels
     "<p><b>Device:</b> iPhone 11</p><p><b>GSMA Blacklist Status:</b> Not Blacklisted</p>"
     "<p><b>Find My iPhone:</b> Off</p><p><b>Coverage:</b> Repairs and Service Coverage: Expired</p>",
     {"model": "iPhone 11", "blacklist": "Not Blacklisted", "fmi": "Off", "warranty": "Repairs and Service Coverage: Expired",
      "fmi_on": False, "blacklisted": False},
     set()),
    ("Completed",  # Google Pixel with ` | `
     "Brand: Google | Model: Pixel 7 Pro | IMEI: 353321000000040 | Carrier: Unlocked | Blacklist: Clean | "
     "Warranty: In Warranty (Expires 2024-05-01) | Country: Germany",
     {"brand": "Google", "model": "Pixel 7 Pro", "carrier": "Unlocked", "blacklist": "Clean",
      "warranty": "In Warranty (Expires 2024-05-01)", "country": "Germany", "blacklisted": False},
     {"IMEI"}),
    ("Completed",  # entity-escaped breaks, Apple extras; values with dashes stay whole
     "Model: iPhone 14 Pro Max&lt;br&gt;Serial: G0NXYZ123456&lt;br&gt;Find My iPhone: ON&lt;br&gt;"
     "iCloud Lock: ON&lt;br&gt;Lost Mode: No&lt;br&gt;Next Tether Policy: 10 - Unlocked&lt;br&gt;"
     "Purchase Date: Mar 4, 2021",
     {"model": "iPhone 14 Pro Max", "serial": "G0NXYZ123456", "fmi": "ON", "icloud": "ON", "fmi_on": True,
      "purchase_date": "Mar 4, 2021", "purchased_on": date(2021, 3, 4), "brand": "Apple"},
     {"Lost Mode", "Next Tether Policy"}),
    ("Completed",  # Xiaomi, CRLF lines, US date
     "Brand: Xiaomi\r\nModel: Redmi Note 10 Pro\r\nIMEI 2: 353321000000057\r\nBlacklist Status: Clean\r\n"
     "Lock Status: Unlocked\r\nPurchase Date: 03/15/2021\r\nCountry: India",
     {"brand": "Xiaomi", "model": "Redmi Note 10 Pro", "imei2": "353321000000057", "blacklist": "Clean",
      "simlock": "Unlocked", "purchased_on": date(2021, 3, 15), "country": "India", "sim_locked": False},
     set()),
    ("Completed",  # Motorola: the brand comes from the model; lost/stolen is blacklisted
     "Model: Motorola Moto G Power (2021)<br>Carrier: Boost Mobile<br>Sim Lock: Locked<br>GSMA Status: Lost/Stolen",
     {"model": "Motorola Moto G Power (2021)", "brand": "Motorola", "carrier": "Boost Mobile", "simlock": "Locked",
      "blacklist": "Lost/Stolen", "blacklisted": True, "sim_locked": True},
     set()),
    ("Completed",  # Apple activation check, ` - ` with a date value holding colons
     "Model: iPhone SE (2022) - Purchase Date: 2022-04-01 10:20:30 - Activation: Yes - FMI: OFF - "
     "MEID: 35332100000065",
     {"model": "iPhone SE (2022)", "purchased_on": date(2022, 4, 1), "activation": "Yes", "fmi": "OFF",
      "meid": "35332100000065", "fmi_on": False},
     set()),
    ("Rejected", "No records found for this IMEI.<br>Order rejected.", {"model": None, "fmi_on": None}, set()),
    ("Rejected",  # rejected with a reason, ` - ` separated
     "Rejected - Reason: Invalid IMEI - Please check and resubmit",
     {"model": None, "blacklisted": None}, {"Reason"}),
]
