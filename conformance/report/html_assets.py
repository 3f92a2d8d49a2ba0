"""The HTML report's inline stylesheet and script (the page loads nothing else).

The script only filters what the server-rendered page already shows (state kept in the URL hash), copies
repro snippets, and adds keyboard shortcuts; without it the whole report is still there and readable.
"""

from __future__ import annotations

CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--error:#8250df;--skip:#6e7781;--xfail:#9a6700;--bg:#fff;--fg:#1f2328;
--mute:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--focus:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 "DejaVu Sans",system-ui,sans-serif;color:var(--fg);background:var(--bg)}
main{padding:0 20px 40px;max-width:1400px;margin:auto}
h1{font-size:22px;margin:14px 0 2px}h2{font-size:18px;margin:26px 0 8px;border-bottom:1px solid var(--line)}
h3{font-size:16px;margin:4px 0}h4{font-size:13px;margin:12px 0 4px;color:var(--mute);text-transform:uppercase;
letter-spacing:.04em}
code,pre,.mono{font-family:"DejaVu Sans Mono",ui-monospace,monospace;font-size:12.5px}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 10px;overflow:auto;margin:4px 0;
white-space:pre}
pre.math{line-height:1.12}
pre.wrap{white-space:pre-wrap;word-break:break-word}
a{color:#0550ae}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.sub{color:var(--mute);margin:0}
.skip-link{position:absolute;left:-999px}.skip-link:focus{left:8px;top:8px;background:#fff;padding:4px 8px;z-index:9}
.verdict{border:2px solid var(--line);border-radius:8px;padding:10px 16px;margin:12px 0}
.verdict.v-fail{border-color:var(--fail);background:#fff5f5}.verdict.v-pass{border-color:var(--pass);background:#f3fbf5}
.verdict .big{font-size:20px;font-weight:700;margin:2px 0 8px}
.v-fail .big{color:var(--fail)}.v-pass .big{color:var(--pass)}
.counts{display:flex;flex-wrap:wrap;gap:6px;margin:0 0 6px;padding:0;list-style:none}
.counts button{font:inherit;border:1px solid var(--line);background:#fff;border-radius:14px;padding:2px 10px;cursor:pointer}
.counts button[aria-pressed=true]{background:var(--fg);color:#fff}
.badlist{margin:6px 0;padding-left:22px}.badlist li{margin:3px 0}
.o-passed .sym,.sym.o-passed{color:var(--pass)}.o-failed .sym,.sym.o-failed{color:var(--fail)}
.o-error .sym,.sym.o-error{color:var(--error)}.o-skipped .sym,.sym.o-skipped{color:var(--skip)}
.o-xfailed .sym,.sym.o-xfailed{color:var(--xfail)}
.sym{font-weight:700}
.flag{color:var(--fail);font-weight:700}
table{border-collapse:collapse;margin:4px 0}
th,td{border:1px solid var(--line);padding:3px 6px;vertical-align:top;text-align:left}
thead th{background:var(--soft);position:sticky;top:var(--bar,0px);z-index:1}
.env{display:flex;flex-wrap:wrap;gap:2px 22px;margin:4px 0}.env dt,.env dd{display:inline;margin:0}
.env dt{color:var(--mute)}
#filters{position:sticky;top:0;z-index:3;background:#fffffff2;border-bottom:1px solid var(--line);padding:8px 0;
display:flex;flex-wrap:wrap;gap:8px 14px;align-items:end}
#filters label{display:flex;flex-direction:column;font-size:12px;color:var(--mute)}
#filters select,#filters input,#filters button{font:inherit;font-size:13px;padding:3px 6px;border:1px solid #8c959f;
border-radius:5px;
background:#fff;color:var(--fg);max-width:280px}
#filters button{cursor:pointer}
#shown{font-size:13px;color:var(--mute);margin-left:auto}
.matrix td.cell{text-align:center;white-space:nowrap;min-width:84px}
.matrix td.cell a{text-decoration:none;color:inherit;display:block}
.matrix .n{display:block;font-size:11px;color:var(--mute)}
.matrix td.o-failed,.checks tr.o-failed>td:first-child{background:#ffebe9}
.matrix td.o-error,.checks tr.o-error>td:first-child{background:#fbefff}
.matrix td.o-passed{background:#eefbf1}.matrix td.o-xfailed{background:#fff8c5}
.matrix td.o-skipped{background:#f6f8fa;color:var(--mute)}
.matrix td.none{color:var(--line);text-align:center}
.matrix td.dim{opacity:.25}
.matrix tr.paper th{background:#eaeef2;font-size:13px}
.impl code{overflow-wrap:anywhere}
section.spec{border-top:2px solid var(--line);padding-top:8px;margin-top:18px;content-visibility:auto;
contain-intrinsic-size:auto 900px}
.meta{color:var(--mute);margin:0 0 4px}
.eqgrid{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:4px 20px}
@media (max-width:900px){.eqgrid{grid-template-columns:1fr}}
dl.amb dt{font-weight:600;margin-top:4px}dl.amb dd{margin:0 0 0 14px}
.checks{width:100%;table-layout:fixed}.checks pre{max-width:100%}
.checks col.c-o{width:78px}.checks col.c-i{width:15%}.checks col.c-d{width:80px}.checks col.c-c{width:17%}
.checks col.c-r{width:82px}.checks col.c-n{width:72px}.checks col.c-p{width:184px}
.checks td{overflow-wrap:anywhere}.checks td.ratio{white-space:nowrap;font-weight:600;text-align:right}
.checks .basis{display:block;color:var(--mute);font-size:12px}
.checks .msg{display:block;color:var(--mute);font-size:12px;white-space:pre-wrap;word-break:break-word;max-height:5.8em;
overflow:auto}
.checks tr.detail>td{background:#fffafa;border-left:4px solid var(--fail)}
.checks tr.detail.o-error>td{border-left-color:var(--error);background:#fdfaff}
.detail h5{margin:6px 0 2px;font-size:13px}
.copyrow{display:flex;gap:8px;align-items:center}
.copyrow button{font:inherit;font-size:13px;padding:2px 10px;border:1px solid #8c959f;border-radius:5px;background:#fff;
cursor:pointer}
.copied{color:var(--pass);font-weight:600}
svg.plot{display:block;overflow:visible}
svg.plot .axis{stroke:#8c959f;fill:none}svg.plot .tol{stroke:var(--fail);stroke-dasharray:3 2;fill:none}
svg.plot .ok{stroke:var(--pass);stroke-width:4;stroke-linecap:round;fill:none}
svg.plot .bad{stroke:var(--fail);stroke-width:5;stroke-linecap:round;fill:none}
svg.plot .lab{font-size:9px;fill:var(--mute);text-anchor:end;font-family:"DejaVu Sans",sans-serif}
svg.plot .tl{fill:var(--fail)}
[hidden]{display:none!important}
.kbd{border:1px solid var(--line);border-bottom-width:2px;border-radius:4px;padding:0 4px;font-size:12px}
"""

JS = r"""
(function(){
"use strict";
var KEYS=["outcome","spec","impl","device","dtype","q"];
function $(s,r){return (r||document).querySelector(s);}
function all(s,r){return Array.prototype.slice.call((r||document).querySelectorAll(s));}
var controls={};KEYS.forEach(function(k){controls[k]=document.getElementById("f-"+k);});
var rows=all("tr[data-row]"),cells=all("td.cell"),mrows=all("tr[data-mrow]"),sections=all("section.spec");
var texts=null;
function state(){var s={};KEYS.forEach(function(k){s[k]=controls[k].value.trim();});return s;}
function outcomeOk(want,outcome){return !want||(want==="bad"?(outcome==="failed"||outcome==="error"):want===outcome);}
function rowOk(s,el,i){
  var d=el.dataset;
  if(s.spec&&d.spec!==s.spec)return false;if(s.impl&&d.impl!==s.impl)return false;
  if(s.device&&d.device!==s.device)return false;if(s.dtype&&d.dtype!==s.dtype)return false;
  if(!outcomeOk(s.outcome,d.outcome))return false;
  if(s.q){if(!texts)texts=rows.map(function(r){return (r.dataset.text||r.textContent).toLowerCase();});
    if(texts[i].indexOf(s.q.toLowerCase())<0)return false;}
  return true;}
function show(el,on){if(el.hidden===!!on)el.hidden=!on;}
// Only changed elements are touched: a report of 50 000 rows re-filters in about a second.
function apply(){
  var s=state(),shown=0,total=0,bySec={},byMrow={};
  rows.forEach(function(el,i){var ok=rowOk(s,el,i);show(el,ok);
    if(!el.classList.contains("detail")){total++;if(ok){shown++;bySec[el.dataset.spec]=true;
      byMrow[el.dataset.spec+"\u0000"+el.dataset.impl+"\u0000"+el.dataset.device+"\u0000"+el.dataset.dtype]=true;}}});
  sections.forEach(function(sec){show(sec,bySec[sec.dataset.spec]);});
  cells.forEach(function(c){var tr=c.parentNode;
    c.classList.toggle("dim",
!byMrow[tr.dataset.spec+"\u0000"+tr.dataset.impl+"\u0000"+c.dataset.device+"\u0000"+c.dataset.dtype]);});
  mrows.forEach(function(tr){show(tr,!!$("td.cell:not(.dim)",tr));});
  all("tr.paper").forEach(function(p){var n=p.nextElementSibling,any=false;
    while(n&&!n.classList.contains("paper")){if(!n.hidden)any=true;n=n.nextElementSibling;}p.hidden=!any;});
  all(".counts button").forEach(function(b){b.setAttribute("aria-pressed",String(b.dataset.outcome===s.outcome));});
  $("#shown").textContent="Showing "+shown+" of "+total+" checks";
  var h=[];KEYS.forEach(function(k){if(s[k])h.push(k+"="+encodeURIComponent(s[k]));});
  if(h.length||location.hash.indexOf("=")>=0)history.replaceState(null,"","#"+h.join("&"));
}
function load(){
  var h=location.hash.slice(1);if(h.indexOf("=")<0)return;
  h.split("&").forEach(function(kv){var i=kv.indexOf("="),k=kv.slice(0,i),v=decodeURIComponent(kv.slice(i+1));
    if(controls[k]){if(controls[k].tagName==="SELECT"&&!all("option",controls[k]).some(function(o){return o.value===v;}
))return;controls[k].value=v;}});
}
function reset(){KEYS.forEach(function(k){controls[k].value="";});apply();}
KEYS.forEach(function(k){controls[k].addEventListener(k==="q"?"input":"change",apply);});
$("#f-reset").addEventListener("click",reset);
all(".counts button").forEach(function(b){b.addEventListener("click",function(){
  controls.outcome.value=controls.outcome.value===b.dataset.outcome?"":b.dataset.outcome;apply();});});
document.addEventListener("click",function(ev){
  var a=ev.target.closest&&ev.target.closest('a[href^="#"]');if(!a)return;
  var t=document.getElementById(a.getAttribute("href").slice(1));if(!t)return;
  ev.preventDefault();reveal(t);});
function reveal(t){
  var hid=false;for(var n=t;n;n=n.parentElement){if(n.hidden)hid=true;}
  if(hid)reset();t.scrollIntoView({block:"center"});if(t.tabIndex<0&&!t.hasAttribute("tabindex"))t.setAttribute("tabindex",
"-1");t.focus({preventScroll:true});}
var bad=all("tr[data-row].o-failed:not(.detail),tr[data-row].o-error:not(.detail)"),at=-1;
document.addEventListener("keydown",function(ev){
  var tag=(ev.target.tagName||"").toLowerCase();if(ev.ctrlKey||ev.metaKey||ev.altKey)return;
  if(tag==="input"||tag==="select"||tag==="textarea"){if(ev.key==="Escape"&&tag==="input"){ev.target.value="";apply();}
return;}
  if(ev.key==="/"){ev.preventDefault();controls.q.focus();}
  else if((ev.key==="n"||ev.key==="p")&&bad.length){at=(at+(ev.key==="n"?1:bad.length-1))%bad.length;reveal(bad[at]);}
});
function copied(btn,ok){var s=btn.parentNode.querySelector(".status");s.textContent=ok?"Copied":"Select and copy with Ctrl+C";
  s.className="status"+(ok?" copied":"");setTimeout(function(){s.textContent="";},4000);}
function fallback(text,btn){
  var ta=document.createElement("textarea");ta.value=text;ta.setAttribute("readonly","");ta.className="copy-fallback";
  ta.style.position="fixed";ta.style.top="0";ta.style.left="0";ta.style.opacity="0";document.body.appendChild(ta);ta.select();
  var ok=false;try{ok=document.execCommand("copy");}catch(e){ok=false;}
  document.body.removeChild(ta);copied(btn,ok);if(!ok){var r=document.createRange();
r.selectNodeContents(document.getElementById(btn.dataset.copy));
  var sel=getSelection();sel.removeAllRanges();sel.addRange(r);}}
all("button.copy").forEach(function(btn){btn.addEventListener("click",function(){
  var text=document.getElementById(btn.dataset.copy).textContent;
  if(navigator.clipboard&&navigator.clipboard.writeText){navigator.clipboard.writeText(text).then(function(){copied(btn,
true);},function(){fallback(text,btn);});}
  else fallback(text,btn);});});
load();apply();
var first=location.hash.slice(1);if(first&&first.indexOf("=")<0){var t=document.getElementById(first);if(t)reveal(t);}
document.documentElement.style.setProperty("--bar",$("#filters").offsetHeight+"px");
})();
"""
