// ahc039 initial program: the best axis-parallel rectangle on a coarse grid.
// Bin the plane into G x G cells, weight each cell by (mackerels - sardines), and find the
// sub-rectangle of cells with the largest total (Kadane over every pair of rows, O(G^3)).
// Print that rectangle's four corners; any rectangle inside [0, 1e5]^2 is a valid answer.
#include <bits/stdc++.h>
using namespace std;

int main() {
    const int G = 100, MAXC = 100000, CELL = MAXC / G;
    int n;
    if (scanf("%d", &n) != 1) return 1;
    vector<vector<int>> w(G, vector<int>(G, 0));  // w[row = y cell][col = x cell]
    for (int k = 0; k < 2 * n; k++) {
        int x, y;
        if (scanf("%d %d", &x, &y) != 2) return 1;
        int cx = min(x / CELL, G - 1), cy = min(y / CELL, G - 1);
        w[cy][cx] += k < n ? 1 : -1;
    }
    long long best = LLONG_MIN;
    int bx0 = 0, bx1 = 0, by0 = 0, by1 = 0;
    vector<long long> col(G);
    for (int top = 0; top < G; top++) {
        fill(col.begin(), col.end(), 0);
        for (int bottom = top; bottom < G; bottom++) {
            for (int c = 0; c < G; c++) col[c] += w[bottom][c];
            long long run = 0;
            int start = 0;
            for (int c = 0; c < G; c++) {  // Kadane: best run of columns ending at c
                if (run <= 0) run = 0, start = c;
                run += col[c];
                if (run > best) best = run, bx0 = start, bx1 = c, by0 = top, by1 = bottom;
            }
        }
    }
    int x0 = bx0 * CELL, x1 = (bx1 + 1) * CELL, y0 = by0 * CELL, y1 = (by1 + 1) * CELL;
    printf("4\n%d %d\n%d %d\n%d %d\n%d %d\n", x0, y0, x1, y0, x1, y1, x0, y1);
    return 0;
}
