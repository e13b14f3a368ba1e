// Renders /api/openapi.json without any third-party code: operations grouped by tag, with
// parameters, request body and responses; schemas shown with their references resolved.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function resolve(doc, schema, depth) {
  if (!schema || typeof schema !== "object" || depth > 6) return schema;
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return resolve(doc, doc.components.schemas[name], depth + 1);
  }
  const out = Array.isArray(schema) ? [] : {};
  for (const [k, v] of Object.entries(schema)) out[k] = resolve(doc, v, depth + 1);
  return out;
}

function schemaBlock(doc, schema) {
  return el("pre", {}, JSON.stringify(resolve(doc, schema, 0), null, 2));
}

function operation(doc, path, method, op) {
  const secured = op.security && !op.security.some((s) => Object.keys(s).length === 0);
  const summary = el("summary", {},
    el("span", { class: "method " + method }, method.toUpperCase()),
    el("span", { class: "path" }, path),
    el("span", {}, op.summary || ""),
    secured ? el("span", { class: "lock" }, "token required") : "");
  const body = el("div", { class: "body" }, el("p", {}, op.description || ""));
  if (op.parameters && op.parameters.length) {
    const rows = op.parameters.map((p) => el("tr", {},
      el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
      el("td", {}, el("code", {}, JSON.stringify(p.schema))), el("td", {}, p.description || "")));
    body.append(el("h4", {}, "Parameters"),
      el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "schema"), el("th", {}, "")), ...rows));
  }
  if (op.requestBody) {
    const content = op.requestBody.content["application/json"];
    body.append(el("h4", {}, "Request body (application/json)"), schemaBlock(doc, content.schema));
  }
  body.append(el("h4", {}, "Responses"));
  for (const [code, resp] of Object.entries(op.responses)) {
    const r = resp.$ref ? doc.components.responses[resp.$ref.split("/").pop()] : resp;
    const media = r.content ? Object.keys(r.content)[0] : "";
    const block = el("details", {}, el("summary", {}, `${code} — ${r.description} ${media ? "(" + media + ")" : ""}`));
    if (media) block.append(schemaBlock(doc, r.content[media].schema));
    body.append(block);
  }
  const node = el("details", { class: "op" }, summary, body);
  node.dataset.search = `${method} ${path} ${op.summary} ${op.description}`.toLowerCase();
  return node;
}

async function main() {
  const doc = await (await fetch("/api/openapi.json")).json();
  document.getElementById("version").textContent = "v" + doc.info.version;
  document.getElementById("intro").textContent = doc.info.description;
  const byTag = new Map((doc.tags || []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(doc, path, method, op));
    }
  }
  const ops = document.getElementById("ops");
  ops.textContent = "";
  for (const [tag, nodes] of byTag) {
    if (!nodes.length) continue;
    ops.append(el("h2", {}, tag), ...nodes);
  }
  document.getElementById("filter").addEventListener("input", (e) => {
    const q = e.target.value.toLowerCase();
    for (const node of ops.querySelectorAll("details.op")) {
      node.style.display = node.dataset.search.includes(q) ? "" : "none";
    }
  });
}

main().catch((e) => {
  document.getElementById("ops").textContent = "Could not load the document: " + e;
});
