// The dashboard's one chart: points issued vs redeemed per day, from the JSON in the page.
// Without JavaScript the same figures are in the table under the chart.
document.addEventListener("DOMContentLoaded", function () {
  var canvas = document.getElementById("points-chart");
  var source = document.getElementById("points-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels.map(function (d) { return d.slice(5); }),
      datasets: [
        { label: "Issued", data: data.issued, backgroundColor: "#2f6f5e" },
        { label: "Redeemed", data: data.redeemed, backgroundColor: "#d08a2e" }
      ]
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: "bottom" } }
    }
  });
});
