// The count and preview follow the conditions as they are typed; adding or removing a row reloads.
const form = document.getElementById("builder");
let timer = null, asked = 0;
async function refresh() {
  const params = new URLSearchParams(new FormData(form));
  params.delete("add"); params.delete("as_form");
  const ticket = ++asked;
  const response = await fetch("/segments/new?" + params + "&fragment=1");
  const html = await response.text();
  if (ticket !== asked) return;  // a later change is on its way
  const result = document.getElementById("result");
  result.innerHTML = html;
  const state = result.querySelector("#next-state").dataset.state;
  document.getElementById("state").value = state;
  document.getElementById("export").href = "/segments/export.csv?" + state;
  if (location.pathname === "/segments/new") history.replaceState(null, "", "/segments/new?" + state);
}
function later() { clearTimeout(timer); timer = setTimeout(refresh, 200); }
form.addEventListener("input", later);
form.addEventListener("change", (event) => {
  const row = event.target.closest(".condition");
  if (row && event.target.classList.contains("when")) row.dataset.when = event.target.value;
  if (event.target.name !== "add") later();
});
