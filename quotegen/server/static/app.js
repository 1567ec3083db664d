// The page's one form: POST the prompt to seed 2's route and show the quote (or the error).
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = document.getElementById("quote");
  const prompt = document.getElementById("prompt").value;
  const key = document.getElementById("key").value;
  out.className = "";
  out.textContent = "\u2026";
  const headers = key ? { Authorization: "Bearer " + key } : {};
  try {
    const response = await fetch("/generate_quote?prompt=" + encodeURIComponent(prompt),
      { method: "POST", headers });
    const body = await response.json();
    if (!response.ok) {
      throw new Error(body.error ? body.error.message : response.statusText);
    }
    out.textContent = body;
  } catch (error) {
    out.className = "error";
    out.textContent = error.message;
  }
});
