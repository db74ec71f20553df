// A campaign's budget burn-down: the budget left at the end of each UTC day, and the straight
// line of an even spend, from the JSON in the page. Without JavaScript the table shows them.
document.addEventListener("DOMContentLoaded", function () {
  var canvas = document.getElementById("burn-down-chart");
  var source = document.getElementById("burn-down-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  new Chart(canvas, {
    type: "line",
    data: {
      labels: data.labels.map(function (d) { return d.slice(5); }),
      datasets: [
        { label: "Budget left", data: data.left, borderColor: "#2f6f5e", backgroundColor: "#2f6f5e", pointRadius: 2 },
        { label: "Even spend", data: data.ideal, borderColor: "#8a96a0", backgroundColor: "#8a96a0", borderDash: [6, 4], pointRadius: 0 }
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
