# A second rule set for generated_rules_tests: the official rules with 窓の月数 = 4, written to OUT (a folder).
# cmake -DSRC=rules -DOUT=dir -P rules_next.cmake
file(GLOB files RELATIVE ${SRC} ${SRC}/*.rules)
file(MAKE_DIRECTORY ${OUT})
foreach(f ${files})
  file(READ ${SRC}/${f} text)
  string(REPLACE "param 窓の月数 = 3\n" "param 窓の月数 = 4\n" text "${text}")
  file(WRITE ${OUT}/${f} "${text}")
endforeach()
