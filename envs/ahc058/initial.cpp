// ahc058 initial program: a one-step-lookahead greedy.
// Each turn, for every affordable machine, estimate the apples at the end of the game if we
// strengthen it now and then do nothing more; take the best option if it beats doing nothing.
// Apples and machine counts are tracked exactly in __int128 (apples saturate far above any
// cost); the estimates use long double.
#include <bits/stdc++.h>
using namespace std;
typedef __int128 i128;

int N, L, T;
long long K;
vector<long long> A;
vector<vector<long long>> C;

// Apples that chain j (levels 0..L-1 of id j) produces over `turns` turns with fixed powers.
long double chainOutput(int j, const vector<vector<i128>>& B,
                        const vector<vector<long long>>& P, int turns) {
    vector<long double> b(L);
    for (int i = 0; i < L; i++) b[i] = (long double)B[i][j];
    long double total = 0;
    for (int t = 0; t < turns; t++) {
        total += (long double)A[j] * b[0] * P[0][j];
        for (int i = 1; i < L; i++) b[i - 1] += b[i] * P[i][j];
    }
    return total;
}

int main() {
    cin >> N >> L >> T >> K;
    A.assign(N, 0);
    for (auto& a : A) cin >> a;
    C.assign(L, vector<long long>(N));
    for (auto& row : C)
        for (auto& c : row) cin >> c;
    const i128 CAP = (i128)1 << 120;
    vector<vector<i128>> B(L, vector<i128>(N, 1));
    vector<vector<long long>> P(L, vector<long long>(N, 0));
    i128 apples = K;
    for (int t = 0; t < T; t++) {
        int remaining = T - t;  // production still happens on this turn
        long double bestGain = 0;
        int bi = -1, bj = -1;
        for (int i = 0; i < L; i++) {
            for (int j = 0; j < N; j++) {
                i128 cost = (i128)C[i][j] * (P[i][j] + 1);
                if (cost > apples) continue;
                long double before = chainOutput(j, B, P, remaining);
                P[i][j]++;
                long double after = chainOutput(j, B, P, remaining);
                P[i][j]--;
                long double gain = after - before - (long double)cost;
                if (gain > bestGain) bestGain = gain, bi = i, bj = j;
            }
        }
        if (bi >= 0) {
            apples -= (i128)C[bi][bj] * (P[bi][bj] + 1);
            P[bi][bj]++;
            printf("%d %d\n", bi, bj);
        } else {
            printf("-1\n");
        }
        for (int j = 0; j < N; j++) {
            i128 add = (i128)A[j] * B[0][j] * P[0][j];
            apples = min(CAP, apples + add);
        }
        for (int i = 1; i < L; i++)
            for (int j = 0; j < N; j++) B[i - 1][j] += B[i][j] * P[i][j];
    }
    return 0;
}
