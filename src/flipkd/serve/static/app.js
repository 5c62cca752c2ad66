"use strict";
// The flipkd web page: plain JS, same origin, no build step. Renders with textContent only.

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = document.getElementById("token").value.trim();
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function postJson(path, body) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    const detail = data && data.detail ? data.detail : response.statusText;
    throw new Error(response.status + ": " + detail);
  }
  return data;
}

function setStatus(id, text, isError) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function showResults(data) {
  const table = document.getElementById("results");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const hit of data.results) {
    const row = document.createElement("tr");
    row.className = "result";
    row.append(cell(String(hit.rank)), cell(hit.question), cell(hit.answer ?? ""),
               cell(hit.score.toFixed(3), "score"));
    body.append(row);
  }
  table.hidden = data.results.length === 0;
}

async function onSearch(event) {
  event.preventDefault();
  const query = document.getElementById("query").value;
  const k = parseInt(document.getElementById("k").value, 10) || 5;
  const rerank = document.getElementById("rerank").checked;
  const weight = parseFloat(document.getElementById("rerank-weight").value);
  const body = { query, k, rerank };
  if (rerank && Number.isFinite(weight)) body.rerank_weight = weight;
  setStatus("search-status", "searching…");
  try {
    const data = await postJson("/search", body);
    showResults(data);
    setStatus("search-status", data.results.length + " result(s)" + (rerank ? ", re-ranked" : ""));
  } catch (err) {
    setStatus("search-status", err.message, true);
  }
}

async function onMatch(event) {
  event.preventDefault();
  const a = document.getElementById("text-a").value;
  const b = document.getElementById("text-b").value;
  const mode = document.getElementById("mode").value;
  setStatus("match-status", "scoring…");
  try {
    const data = await postJson("/match", { pairs: [[a, b]], mode });
    const result = data.results[0];
    document.getElementById("match-score").textContent = result.score.toFixed(3);
    const label = document.getElementById("match-label");
    label.textContent = result.label ? "match" : "no match";
    label.className = result.label ? "match" : "nomatch";
    document.getElementById("match-threshold").textContent = data.threshold.toFixed(2);
    document.getElementById("match-result").hidden = false;
    setStatus("match-status", "");
  } catch (err) {
    setStatus("match-status", err.message, true);
  }
}

document.getElementById("search-form").addEventListener("submit", onSearch);
document.getElementById("match-form").addEventListener("submit", onMatch);
