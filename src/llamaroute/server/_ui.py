"""The dashboard at ``/ui``: one small page with inline JS and an SVG chart, no build step.

The page itself carries no figures; it asks for the master key, keeps it in the tab's
``sessionStorage`` and reads ``/ui/data`` with it (a master-key endpoint), then again every
few seconds (``/ui?refresh=SECONDS``, default 10): spend per day by key, model or provider,
every key's budget left, the circuit breakers and the recent failed attempts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._gateway import Gateway

__all__ = ["dashboard_data", "dashboard_page"]


def dashboard_data(gateway: Gateway, days: int = 30) -> dict[str, object]:
    """What the page shows, as JSON (amounts as exact strings)."""
    since = (datetime.now(UTC).date() - timedelta(days=days - 1)).isoformat()
    store = gateway.store
    names = {record.id: record.name for record in store.list_keys()}
    by_key = {
        day: {names.get(k, k): v for k, v in per.items()}
        for day, per in store.series("key", since).items()
    }
    return {
        "since": since,
        "series": {
            "key": by_key,
            "model": store.series("model", since),
            "provider": store.series("provider", since),
        },
        "keys": [record.as_dict() for record in store.list_keys()],
        "breakers": gateway.client.health(),
        "failures": list(gateway.failures)[::-1],
        "total": store.spend("day", since)["total"],
    }


def dashboard_page() -> str:
    """The page (static: the figures come from ``/ui/data``)."""
    return _PAGE


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llamaroute gateway</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}.open{color:#b00}.closed{color:#070}
#login{margin:2em 0}#err{color:#b00}svg text{font-size:10px}
</style></head><body>
<h1>llamaroute gateway</h1>
<form id="login"><label>Master key <input id="key" type="password" autocomplete="off"></label>
<button id="go" type="submit">Show</button> <span id="err"></span></form>
<div id="board" hidden>
<p>Spend since <span id="since"></span>: <b id="total"></b> USD.
Updated <span id="updated"></span> (<span id="refreshes">0</span> refreshes).
Chart by <select id="by"><option>key</option><option>model</option><option>provider</option>
</select></p>
<svg id="chart" width="720" height="240" role="img" aria-label="spend per day"></svg>
<div id="legend"></div>
<h2>Budgets</h2><table id="keys"><thead><tr><th>key</th><th>name</th><th class="num">budget</th>
<th class="num">spent</th><th class="num">left</th><th>rpm</th><th>status</th></tr></thead>
<tbody></tbody></table>
<h2>Circuit breakers</h2><table id="breakers"><thead><tr><th>route</th><th>state</th>
<th class="num">failures</th></tr></thead><tbody></tbody></table>
<h2>Recent failed attempts</h2><table id="failures"><thead><tr><th>when</th><th>provider</th>
<th>model</th><th>error</th><th>status</th></tr></thead><tbody></tbody></table>
</div>
<script>
"use strict";
const COLORS=["#4e79a7","#f28e2b","#e15759","#76b7b2","#59a14f","#edc948","#b07aa1","#ff9da7"];
const params=new URLSearchParams(location.search);
const every=Math.max(1,Number(params.get("refresh")||10))*1000;
let data=null,timer=null,refreshes=0;
function cell(row,text,cls){const td=row.insertCell();td.textContent=text??"";
 if(cls)td.className=cls;}
function fill(id,rows,make){const body=document.querySelector("#"+id+" tbody");
 body.replaceChildren();
 for(const r of rows){make(body.insertRow(),r);}}
function chart(){const svg=document.getElementById("chart");
 const by=document.getElementById("by").value;
 const series=data.series[by]||{};const days=Object.keys(series).sort();
 const names=[...new Set(days.flatMap(d=>Object.keys(series[d])))].sort();
 const totals=days.map(d=>Object.values(series[d]).reduce((a,v)=>a+Number(v),0));
 const top=Math.max(...totals,1e-12),W=720,H=240,L=60,B=20,bw=Math.max(4,
 (W-L)/Math.max(days.length,1)-4);
 const ns="http://www.w3.org/2000/svg";svg.replaceChildren();
 const t=document.createElementNS(ns,"text");t.setAttribute("x",2);t.setAttribute("y",12);
 t.textContent="$"+top.toPrecision(3);svg.appendChild(t);
 days.forEach((d,i)=>{let y=H-B;names.forEach((n,j)=>{const v=Number(series[d][n]||0);if(!v)return;
  const h=(H-B-16)*v/top;const r=document.createElementNS(ns,"rect");
  r.setAttribute("x",L+i*(bw+4));r.setAttribute("y",y-h);r.setAttribute("width",bw);
  r.setAttribute("height",h);r.setAttribute("fill",COLORS[j%COLORS.length]);
  r.setAttribute("data-name",n);r.setAttribute("data-day",d);r.setAttribute("data-cost",
 series[d][n]);
  const tip=document.createElementNS(ns,"title");tip.textContent=d+" "+n+": $"+series[d][n];
  r.appendChild(tip);svg.appendChild(r);y-=h;});
  const l=document.createElementNS(ns,"text");l.setAttribute("x",L+i*(bw+4));
 l.setAttribute("y",H-4);
  l.textContent=d.slice(5);svg.appendChild(l);});
 const legend=document.getElementById("legend");legend.replaceChildren();
 names.forEach((n,j)=>{const s=document.createElement("span");s.style.color=COLORS[j%COLORS.length];
  s.textContent="\\u25A0 "+n+"  ";legend.appendChild(s);});}
function render(){document.getElementById("since").textContent=data.since;
 document.getElementById("total").textContent=data.total;
 document.getElementById("updated").textContent=new Date().toLocaleTimeString();
 document.getElementById("refreshes").textContent=String(refreshes);
 fill("keys",data.keys,(row,k)=>{cell(row,k.id);cell(row,k.name);cell(row,k.budget??"-","num");
  cell(row,k.spent,"num");cell(row,k.remaining??"-","num");cell(row,k.rpm??"-");
  cell(row,k.revoked?"revoked":"active");});
 fill("breakers",Object.entries(data.breakers),(row,[route,b])=>{cell(row,route);
  cell(row,b.state,b.state);cell(row,b.consecutive_failures??b.failures??"","num");});
 fill("failures",data.failures,(row,f)=>{cell(row,new Date(f.at*1000).toLocaleString());
  cell(row,f.provider);cell(row,f.model_id);cell(row,f.error_type);cell(row,f.status_code);});
 chart();}
async function load(){const key=sessionStorage.getItem("llamaroute-master");if(!key)return;
 const r=await fetch("ui/data",{headers:{Authorization:"Bearer "+key},cache:"no-store"});
 if(!r.ok){document.getElementById("err").textContent="refused ("+r.status+")";
  document.getElementById("board").hidden=true;sessionStorage.removeItem("llamaroute-master");
 return;}
 data=await r.json();refreshes+=1;document.getElementById("err").textContent="";
 document.getElementById("login").hidden=true;document.getElementById("board").hidden=false;
 render();}
document.getElementById("login").addEventListener("submit",e=>{e.preventDefault();
 sessionStorage.setItem("llamaroute-master",document.getElementById("key").value);load();});
document.getElementById("by").addEventListener("change",()=>{if(data)chart();});
load();timer=setInterval(load,every);
</script></body></html>
"""
