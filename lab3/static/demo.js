// The demo page: asks /model what is served, shows the matching form, posts to /predict (a row
// of readings) or /predict/image (a file), and shows the label and the probabilities.
"use strict";

const $ = (id) => document.getElementById(id);

// Example windows of daily temperatures (the day itself in the middle): what the sensor faults
// of the temperature dataset look like. Other tabular models get a row of zeros to edit.
function exampleRow(kind, columns) {
  const n = columns.length;
  const middle = Math.floor(n / 2);
  const day = (i) => +(12 + 3 * Math.sin(i / 3)).toFixed(1);
  const row = columns.map((_, i) => day(i));
  if (kind === "spike") row[middle] = 41.5;
  if (kind === "stuck") row.fill(row[middle - 3], middle - 3, middle + 1);
  if (kind === "missing") row[middle] = "";
  return row.join(", ");
}

function parseRow(text, columns) {
  const cells = text.split(",").map((cell) => cell.trim());
  if (cells.length !== columns.length) {
    throw new Error(`expected ${columns.length} values (${columns.join(", ")}), got ${cells.length}`);
  }
  return cells.map((cell, i) => {
    if (cell === "") return null; // a missing reading
    const value = Number(cell);
    if (!Number.isFinite(value)) throw new Error(`${columns[i]}: ${JSON.stringify(cell)} is not a number`);
    return value;
  });
}

function showAnswer(label, probabilities) {
  $("error").hidden = true;
  $("label").textContent = label;
  const rows = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  const body = $("probabilities").querySelector("tbody");
  body.replaceChildren(...rows.map(([name, p]) => {
    const tr = document.createElement("tr");
    if (name === label) tr.className = "top";
    const bar = `<span class="bar" style="width:${(p * 12).toFixed(2)}rem"></span>`;
    tr.innerHTML = `<td></td><td>${p.toFixed(3)}</td><td>${bar}</td>`;
    tr.firstChild.textContent = name; // a class name is text, never markup
    return tr;
  }));
  $("answer").hidden = false;
}

function showError(message) {
  $("answer").hidden = true;
  $("error").textContent = message;
  $("error").hidden = false;
}

async function call(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${url}: HTTP ${response.status}`);
  return body;
}

async function start() {
  let model;
  try {
    model = await call("/model");
  } catch (error) {
    $("model").textContent = `No model is served yet: ${error.message}`;
    return;
  }
  const alias = model.alias ? ` (@${model.alias})` : "";
  const what = model.name ? `${model.name} version ${model.version}${alias}` : `the model in ${model.uri}`;
  $("model").textContent = `Serving ${what}; classes: ${model.classes.join(", ")}.`;

  if (model.input.kind === "tabular") {
    const columns = model.input.columns;
    $("columns").textContent = columns.join(", ");
    $("readings").value = exampleRow("normal", columns);
    for (const button of document.querySelectorAll("[data-example]")) {
      button.addEventListener("click", () => { $("readings").value = exampleRow(button.dataset.example, columns); });
    }
    $("tabular").hidden = false;
    $("tabular").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const row = parseRow($("readings").value, columns);
        const answer = await call("/predict", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ instances: [row] }),
        });
        const probabilities = Object.fromEntries(model.classes.map((name, i) => [name, answer.probabilities[0][i]]));
        showAnswer(answer.labels[0], probabilities);
      } catch (error) {
        showError(error.message);
      }
    });
  } else {
    $("image").hidden = false;
    $("image").addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = $("file").files[0];
      if (!file) return showError("choose an image first");
      const form = new FormData();
      form.append("file", file);
      try {
        const answer = await call("/predict/image", { method: "POST", body: form });
        showAnswer(answer.label, answer.probabilities);
      } catch (error) {
        showError(error.message);
      }
    });
  }
}

start();
