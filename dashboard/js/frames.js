// One animation frame for every module that renders: data arrives as fast as it likes and is only
// recorded; the DOM and the chart are touched at most once per frame.

const tasks = new Set();
let requested = false;

/** Run `task(now)` in the next animation frame (once, however often it is scheduled before then). */
export function scheduleFrame(task) {
  tasks.add(task);
  if (!requested) {
    requested = true;
    requestAnimationFrame(runTasks);
  }
}

function runTasks(now) {
  requested = false;
  const due = [...tasks];
  tasks.clear();
  for (const task of due) {
    try {
      task(now);
    } catch (error) {
      console.error(error); // one failing renderer must not stop the others
    }
  }
}
